"""MoonHub's pieces that live in the user image: the notebook job runner."""
