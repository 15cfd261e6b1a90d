package tcp

// urgState is the urgent data of a connection.
type urgState struct{}
