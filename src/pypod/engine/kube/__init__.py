"""Kubernetes YAML: `kube generate` (containers and pods -> Pod, Service) and `kube play`
(Pod, Deployment, ConfigMap, Secret, PersistentVolumeClaim -> pods, containers, volumes), as
podman 4.3 does them."""
