package tcp

import "github.com/sockstack/sockstack/wire"

const synFlag = wire.TCPFlagSYN

// Defaults of the hardening limits (see Config).
const (
	defaultMaxTimeWait = 32768
	defaultMaxOrphans  = 16384
	defaultMemPressure = 256 << 20
	defaultMemLimit    = 384 << 20
)

func (c *Config) setSecDefaults() {
	if c.InvalidRateLimit <= 0 {
		c.InvalidRateLimit = defaultInvalidRateLimit
	}
	if c.MaxTimeWait <= 0 {
		c.MaxTimeWait = defaultMaxTimeWait
	}
	if c.MaxOrphans <= 0 {
		c.MaxOrphans = defaultMaxOrphans
	}
	if c.MemLimit <= 0 {
		c.MemLimit = defaultMemLimit
	}
	if c.MemPressure <= 0 {
		c.MemPressure = defaultMemPressure
	}
	c.MemPressure = min(c.MemPressure, c.MemLimit)
}
