package httpd

import (
	"reflect"

	"github.com/sockstack/sockstack/tcp"
)

// tcpStats flattens TCP's counters (named like netstat -s) into Stats.
func tcpStats(s tcp.StatsSnapshot, nonZero bool) []Stat {
	var out []Stat
	v := reflect.ValueOf(s)
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		if f.Kind() != reflect.Uint64 {
			continue
		}
		if nonZero && f.Uint() == 0 {
			continue
		}
		out = append(out, Stat{"TCP", v.Type().Field(i).Name, f.Uint()})
	}
	return out
}
