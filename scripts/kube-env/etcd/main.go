// Command etcd is the stock etcd server entry point (identical to etcd's own
// main.go), kept in a wrapper module so the test control plane can build a
// pinned etcd release from the Go module proxy.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
