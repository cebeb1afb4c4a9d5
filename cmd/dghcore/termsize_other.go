//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package main

import "os"

// terminalColumns is 0 where the width cannot be asked for: $COLUMNS or
// 80 decide.
func terminalColumns(*os.File) int { return 0 }
