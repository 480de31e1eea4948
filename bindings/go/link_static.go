//go:build !circuit_shared && !circuit_pkgconfig

package circuit

// Default link mode: the static archive from the repository's build
// (`cargo build --release -p circuit-ffi`). Programs using the package are
// self-contained: nothing to find at run time. The system libraries are
// the ones the Rust standard library needs (`Libs.private` in circuit.pc).
//
// Other modes (see README.md): `-tags circuit_shared` links
// target/release/libcircuit.so; `-tags circuit_pkgconfig` uses the
// installed library through pkg-config.

// #cgo CFLAGS: -I${SRCDIR}/../../include
// #cgo LDFLAGS: ${SRCDIR}/../../target/release/libcircuit.a -lgcc_s -lutil -lrt -lpthread -lm -ldl
import "C"
