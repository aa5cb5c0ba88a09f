package vw1871

import (
	"slices"
	"strconv"
	"strings"
)

// baudRates are the serial rates a spec may name (termios has a constant
// for each).
var baudRates = map[int]struct{}{
	1200: {}, 2400: {}, 4800: {}, 9600: {}, 19200: {}, 38400: {}, 57600: {},
	115200: {}, 230400: {}, 460800: {}, 500000: {}, 921600: {}, 1000000: {},
}

func supportedBauds() string {
	var rs []int
	for r := range baudRates {
		rs = append(rs, r)
	}
	slices.Sort(rs)
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = strconv.Itoa(r)
	}
	return strings.Join(s, ", ")
}
