package conformance

import "unsafe"

// unsafePointer lets cmsg write a cmsghdr into a byte slice.
func unsafePointer(b *byte) unsafe.Pointer { return unsafe.Pointer(b) }
