// The OCI distribution protocol client: `docker://` references, credentials, the token flow,
// manifests, ranged blob reads and pushes, on Foundation's URLSession.
