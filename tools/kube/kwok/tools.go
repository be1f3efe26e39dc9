//go:build tools

// The command install_kube.py builds; imported here so `go mod tidy` keeps its dependencies.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
