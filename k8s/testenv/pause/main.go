// The sandbox ("pause") container of the test cluster's node: it holds the Pod's namespaces
// and does nothing else. It sleeps until SIGTERM or SIGINT, then exits 0. Built here because
// no registry is reachable to pull the upstream one.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
