package signalledger

import "os"

// SetFileSync replaces the fsync of the store's file (tests make it fail).
func SetFileSync(s *FileStore, sync func(*os.File) error) { s.file.Sync = sync }
