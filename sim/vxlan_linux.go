package sim

import "github.com/sockstack/sockstack/link"

type linuxVXLAN struct {
	v    *link.VXLAN
	name string
}

func openVXLAN(e *vxlanEnd) (vxlanConn, error) {
	v, err := link.NewVXLAN(link.VXLANConfig{Local: e.cfg.Local, Remotes: e.cfg.Remotes, VNI: e.cfg.VNI,
		MAC: e.mac, MTU: e.link.Cfg.MTU})
	if err != nil {
		return nil, err
	}
	v.Attach(e)
	return &linuxVXLAN{v: v, name: e.link.Name}, nil
}

func (c *linuxVXLAN) WriteFrames(f [][]byte) (int, error) { return c.v.WriteFrames(f) }
func (c *linuxVXLAN) Close() error                        { return c.v.Close() }

func (c *linuxVXLAN) metrics() VXLANMetrics {
	st := c.v.Stats()
	return VXLANMetrics{Link: c.name, Local: c.v.LocalAddr().String(), RxFrames: st.RxFrames.Load(), TxFrames: st.TxFrames.Load(),
		Learned: c.v.Learned.Load(), Flooded: c.v.Flooded.Load(), WrongVNI: c.v.WrongVNI.Load(), BadHeader: c.v.BadHeader.Load()}
}
