package semcache

// Delete drops the entries ids of partition from the store (unknown ones
// are skipped) and returns how many it dropped. A store mirroring another
// (the proxy's Redis store keeps a MemStore as its local index) needs it to
// follow drops made elsewhere.
func (s *MemStore) Delete(partition string, ids ...string) int {
	p := s.part(partition, false)
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, id := range ids {
		if me := p.byID[id]; me != nil {
			p.remove(me)
			n++
		}
	}
	return n
}
