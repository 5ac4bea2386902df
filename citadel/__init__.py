"""Citadel: the mesh's certificate authority. Workload SPIFFE identities over SDS and a CSR API, rotation."""
