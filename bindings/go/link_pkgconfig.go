//go:build circuit_pkgconfig

package circuit

// `-tags circuit_pkgconfig`: the library installed by `make install`
// (ci/install.sh), found through pkg-config (set PKG_CONFIG_PATH to
// $PREFIX/lib/pkgconfig for a prefix outside the default search path, and
// make $PREFIX/lib visible to the loader, for example with ldconfig or
// LD_LIBRARY_PATH).

// #cgo pkg-config: circuit
import "C"
