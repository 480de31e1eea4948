// Command installed is the smallest program using the package from another
// module. ci/go.sh copies it and bindings/go into a temporary directory
// outside the repository, points the module at the copy with a `replace`
// directive, and builds it with `-tags circuit_pkgconfig` against the
// library installed by `make install PREFIX=...` (README "Go outside this
// repository").
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"example.invalid/circuit"
)

func main() {
	b, err := circuit.New(circuit.Config{Name: "installed", ConsecutiveFailures: 2, OpenDuration: time.Minute})
	if err != nil {
		fmt.Fprintln(os.Stderr, "installed:", err)
		os.Exit(1)
	}
	defer b.Close()
	boom := errors.New("boom")
	for i := 0; i < 2; i++ {
		_ = b.Execute(context.Background(), func(context.Context) error { return boom })
	}
	err = b.Execute(context.Background(), func(context.Context) error { return nil })
	state, _ := b.State()
	if !errors.Is(err, circuit.ErrOpen) || state != circuit.StateOpen {
		fmt.Fprintf(os.Stderr, "installed: expected an open breaker, got %v (%v)\n", err, state)
		os.Exit(1)
	}
	fmt.Printf("libcircuit %s (sync built in: %v): the breaker opened after 2 failures\n",
		circuit.LibraryVersion(), circuit.SyncAvailable())
}
