package socket

func newISOTP(n *Net) endpoint { return nil }
