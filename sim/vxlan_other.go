//go:build !linux

package sim

import "errors"

func openVXLAN(*vxlanEnd) (vxlanConn, error) {
	return nil, errors.New("VXLAN ports need Linux")
}
