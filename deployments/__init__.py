"""The Ray Serve application: HTTP ingress and transform deployments."""
