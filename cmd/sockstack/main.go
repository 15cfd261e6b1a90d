// Command sockstack runs the sockstack user-space TCP/IP stack: a demo on
// the built-in virtual network, a host on a real link, client tools, and
// benchmarks.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	root := &cobra.Command{
		Use:           "sockstack",
		Short:         "A user-space TCP/IP stack with the BSD socket interface",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(demoCmd())
	for _, c := range extraCommands {
		root.AddCommand(c())
	}
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "sockstack:", err)
		os.Exit(1)
	}
}

// extraCommands lets other files add subcommands.
var extraCommands []func() *cobra.Command
