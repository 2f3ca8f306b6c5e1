package bot

import "errors"

// ErrConflict is returned when a request contradicts a record's state (e.g.
// retrying an outbox action that is not failed); nothing was changed.
var ErrConflict = errors.New("conflict")
