//go:build !linux

package bolt

// trimMapping is a no-op where the kernel's fault-around is not known to
// inflate the file's resident pages.
func (s *Store) trimMapping() error { return nil }

// fileResident is unknown here: the trim loop sees no growth.
type fileResident struct{}

func openFileResident() *fileResident { return &fileResident{} }
func (*fileResident) read() int64     { return 0 }
func (*fileResident) close()          {}
