package main

import (
	"github.com/spf13/cobra"
)

func simGridCmd() *cobra.Command {
	return &cobra.Command{Use: "grid", Short: "placeholder"}
}
