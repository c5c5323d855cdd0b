package coordinator

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// storeFile is the bbolt file in Config.DataDir.
const storeFile = "coordinator.db"

var (
	bucketDataflows = []byte("dataflows") // id -> dataflowRec JSON (with its stop intent)
	bucketDaemons   = []byte("daemons")   // name -> daemonInfo JSON
)

// store persists dataflows, stop intents and known daemons in one bbolt file.
type store struct {
	db   *bolt.DB
	path string
}

// openStore opens (or creates) the store in dir.
func openStore(dir string) (*store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir %s: %w", dir, err)
	}
	path := filepath.Join(dir, storeFile)
	// The timeout bounds the wait for the file lock held by another coordinator.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open store %s (is another coordinator using it?): %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketDataflows, bucketDaemons} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("create bucket %s: %w", b, err)
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("init store %s: %w", path, err)
	}
	return &store{db: db, path: path}, nil
}

func (s *store) close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store %s: %w", s.path, err)
	}
	return nil
}

// loadDataflows reads every dataflow record.
func (s *store) loadDataflows() ([]*dataflowRec, error) {
	var out []*dataflowRec
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDataflows).ForEach(func(k, v []byte) error {
			var d dataflowRec
			if err := json.Unmarshal(v, &d); err != nil {
				return fmt.Errorf("decode dataflow %s: %w", k, err)
			}
			out = append(out, &d)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load dataflows from %s: %w", s.path, err)
	}
	return out, nil
}

// putDataflows writes encoded records (nil value = delete) in one transaction.
func (s *store) putDataflows(recs map[string][]byte) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDataflows)
		for id, v := range recs {
			var err error
			if v == nil {
				err = b.Delete([]byte(id))
			} else {
				err = b.Put([]byte(id), v)
			}
			if err != nil {
				return fmt.Errorf("write dataflow %s: %w", id, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store %s: %w", s.path, err)
	}
	return nil
}

// loadDaemons reads every known daemon.
func (s *store) loadDaemons() ([]daemonInfo, error) {
	var out []daemonInfo
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDaemons).ForEach(func(k, v []byte) error {
			var d daemonInfo
			if err := json.Unmarshal(v, &d); err != nil {
				return fmt.Errorf("decode daemon %s: %w", k, err)
			}
			out = append(out, d)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load daemons from %s: %w", s.path, err)
	}
	return out, nil
}

// putDaemon records a daemon's last registration.
func (s *store) putDaemon(d daemonInfo) error {
	v, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode daemon %s: %w", d.Name, err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDaemons).Put([]byte(d.Name), v)
	})
	if err != nil {
		return fmt.Errorf("store %s: write daemon %s: %w", s.path, d.Name, err)
	}
	return nil
}

// deleteDaemons forgets daemons.
func (s *store) deleteDaemons(names []string) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDaemons)
		for _, name := range names {
			if err := b.Delete([]byte(name)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store %s: delete daemons: %w", s.path, err)
	}
	return nil
}
