//go:build !amd64

package wire

func sumWide(b []byte) (uint64, int) { return 0, 0 }
