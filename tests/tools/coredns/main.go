// Command coredns is CoreDNS with only the plugins the test node's Corefile uses
// (kubernetes, template, bind, errors, log, health): the full plugin set pulls in cloud SDKs
// that would triple the build time. Same flags as upstream (`-conf`, `-version`).
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/template"
)

func main() {
	coremain.Run()
}
