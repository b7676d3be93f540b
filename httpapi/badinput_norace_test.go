//go:build !race

package httpapi_test

// raceEnabled: see badinput_race_test.go.
const raceEnabled = false
