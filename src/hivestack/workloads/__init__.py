"""What the platform asks of its Kubernetes workloads, independent of how they are declared."""
