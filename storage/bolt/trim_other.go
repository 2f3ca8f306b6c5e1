//go:build !linux

package bolt

// trimMapping is a no-op where the kernel's fault-around is not known to
// inflate the file's resident pages.
func (s *Store) trimMapping() error { return nil }
