"""MoonHub's container images: one spec (spec.yaml), the build (build.py), tests in
tests/images/. See docs/images.md."""
