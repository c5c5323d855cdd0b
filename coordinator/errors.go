package coordinator

import (
	"errors"
	"fmt"
	"net/http"
)

// apiError is an error with the HTTP status the control API answers it with.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func newAPIError(status int, format string, args ...any) error {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

// httpStatus is the status code for err: its own, else 500.
func httpStatus(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.status
	}
	return http.StatusInternalServerError
}
