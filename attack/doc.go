// Package attack is the attack suite: its tests play attacks against a
// sockstack host on an in-memory switch and assert on the victim's
// memory, counters and service; FuzzHost throws arbitrary frames at a
// host and checks that each one is accounted for. docs/SECURITY.md
// describes the threat model and the figures the suite measures.
package attack
