"""What MoonHub's services ask the JupyterHub REST API, read in full or not at all."""
