"""kubeforge: compile one declarative file into a kubeadm HA cluster and deploy it."""

__version__ = "0.1.0"
