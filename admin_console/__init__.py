"""The admin console: a hub page where admins curate the catalog (enable / disable
environments, defaults, group restrictions, GPU quotas) and see who runs what."""
