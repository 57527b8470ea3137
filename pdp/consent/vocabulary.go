package consent

// TypeChecker tells whether a type names an entity type of the active
// policy schema (in the relationship store's terms: "user"); a consent
// for a subject of any other type could never be read by a decision.
// *sources.Vocabulary is one.
type TypeChecker interface {
	DeclaresType(typ string) bool
}

// checkCaller checks the caller and the parties of a write: the calling
// application and the subject are required, and the subject and the actor
// (when given) must be of types the schema declares.
func (l *Ledger) checkCaller(app string, subject, actor Ref) error {
	if err := checkCaller(app, subject); err != nil {
		return err
	}
	if l.types == nil {
		return nil
	}
	if !l.types.DeclaresType(subject.Type) {
		return invalid("subject.type %q is not declared in the policy schema", subject.Type)
	}
	if actor.Type != "" && !l.types.DeclaresType(actor.Type) {
		return invalid("actor.type %q is not declared in the policy schema", actor.Type)
	}
	return nil
}
