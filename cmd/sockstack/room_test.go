package main

import (
	"bytes"
	"context"
	"io"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockstack/sockstack/apps/chat"
)

// watchBuffer is a writer whose content can be waited on.
type watchBuffer struct {
	mu   sync.Mutex
	b    bytes.Buffer
	cond *sync.Cond
}

func newWatchBuffer() *watchBuffer {
	w := &watchBuffer{}
	w.cond = sync.NewCond(&w.mu)
	return w
}

func (w *watchBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cond.Broadcast()
	return w.b.Write(p)
}

// waitFor waits until the content holds every s, or the limit passed
// (then it reports false).
func (w *watchBuffer) waitFor(limit time.Duration, subs ...string) bool {
	timer := time.AfterFunc(limit, func() { w.mu.Lock(); w.cond.Broadcast(); w.mu.Unlock() })
	defer timer.Stop()
	deadline := time.Now().Add(limit)
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(w.b.String(), s)
		}
		if all {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		w.cond.Wait()
	}
}

func (w *watchBuffer) String() string { w.mu.Lock(); defer w.mu.Unlock(); return w.b.String() }

// chat --bots: a lone user finds a room with others who answer.
func TestChatBots(t *testing.T) {
	e, err := (&hostFlags{}).open(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := netip.AddrPortFrom(vnetServer, chat.Port)
	out := newWatchBuffer()
	in, feed := io.Pipe()
	chatDone := make(chan error, 1)
	go func() { chatDone <- runChat(ctx, out, e.api, srv, "alice", true, in) }()
	if !out.waitFor(10*time.Second, "* welcome alice") {
		t.Fatalf("no welcome:\n%s", out.String())
	}
	botsDone := make(chan struct{})
	go func() { defer close(botsDone); runBots(ctx, e.api, srv, 2, true) }()
	if !out.waitFor(10*time.Second, "* bot1 joined", "* bot2 joined", "bot1: hello, I am bot1") {
		t.Fatalf("the bots did not come:\n%s", out.String())
	}
	// The bots are in the room.
	feed.Write([]byte("/who\n"))
	if !out.waitFor(10*time.Second, "* here: alice, bot1, bot2") {
		t.Fatalf("bots not in the room:\n%s", out.String())
	}
	feed.Write([]byte("hello bots\n"))
	if !out.waitFor(10*time.Second, `bot1: alice: you said "hello bots"`, `bot2: alice: you said "hello bots"`) {
		t.Fatalf("no answer from the bots:\n%s", out.String())
	}
	cancel()
	feed.Close()
	<-chatDone
	<-botsDone
}

// mcast send loops back to listeners on the same host by default, as
// Linux's IP_MULTICAST_LOOP does.
func TestMcastLoopsBackByDefault(t *testing.T) {
	if def := mcastCmd().Flags().Lookup("loop").DefValue; def != "true" {
		t.Fatalf("--loop defaults to %s", def)
	}
	e, err := (&hostFlags{}).open(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	gp := netip.MustParseAddrPort("239.7.7.7:5007")
	out := newWatchBuffer()
	done := make(chan error, 1)
	go func() { done <- mcastListen(context.Background(), out, e.api, gp, 0, 1, 10*time.Second) }()
	if !out.waitFor(10*time.Second, "joined 239.7.7.7") {
		t.Fatal("listener did not join")
	}
	if err := mcastSend(context.Background(), io.Discard, e.api, gp, "to myself", 1, 1, time.Millisecond, true); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil || !strings.Contains(out.String(), `"to myself"`) {
		t.Fatalf("%v\n%s", err, out.String())
	}
}
