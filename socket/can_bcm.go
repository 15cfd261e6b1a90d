package socket

func newBCM(n *Net) endpoint { return nil }
