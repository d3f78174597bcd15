"""MoonHub's pieces that live in the user image: the notebook job runner and the server
extension that forwards to the jobs service."""
