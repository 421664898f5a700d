//go:build tools

// Package tools pins the etcd server command this module builds.
// The etcd binary's main package is the root of go.etcd.io/etcd/server/v3.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
)
