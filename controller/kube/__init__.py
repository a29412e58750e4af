"""Small adapters to the Kubernetes API shared by the webhook, scan and the operator."""
