package sim

import (
	"reflect"
	"strings"
)

// hasYAMLTag reports whether struct value v has a field tagged key.
func hasYAMLTag(v any, key string) bool {
	t := reflect.TypeOf(v)
	for i := 0; i < t.NumField(); i++ {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if tag == key && tag != "-" {
			return true
		}
	}
	return false
}
