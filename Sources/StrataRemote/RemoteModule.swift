// Images straight from a registry: the lazy blob cache's fetcher, the background fetch,
// index artifacts shared through the registry, and the mount's status.
