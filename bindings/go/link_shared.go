//go:build circuit_shared && !circuit_pkgconfig

package circuit

// `-tags circuit_shared`: link the repository's target/release/libcircuit.so
// and find it there at run time (rpath). The library's SONAME is
// libcircuit.so.0, so the loader looks for that name: create it next to the
// build output once (`ln -sf libcircuit.so target/release/libcircuit.so.0`;
// ci/go.sh does).

// #cgo CFLAGS: -I${SRCDIR}/../../include
// #cgo LDFLAGS: -L${SRCDIR}/../../target/release -lcircuit -Wl,-rpath,${SRCDIR}/../../target/release
import "C"
