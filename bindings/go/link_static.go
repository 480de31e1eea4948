//go:build !circuit_shared && !circuit_pkgconfig

package circuit

// Default link mode: the static archive from the repository's build
// (`cargo build --release -p circuit-ffi`). Programs using the package are
// self-contained: nothing to find at run time. The system libraries are
// the ones the Rust standard library needs (`Libs.private` in circuit.pc).
// With a cargo target directory elsewhere, add it to the search path:
// CGO_LDFLAGS=-L$CARGO_TARGET_DIR/release.
//
// Other modes (see README.md): `-tags circuit_shared` links
// target/release/libcircuit.so; `-tags circuit_pkgconfig` uses the
// installed library through pkg-config.

// #cgo CFLAGS: -I${SRCDIR}/../../include
// #cgo LDFLAGS: -L${SRCDIR}/../../target/release -l:libcircuit.a -lgcc_s -lutil -lrt -lpthread -lm -ldl
import "C"
