//! Kubernetes API simulator (being written).
