# The AuthZEN interop "Todo" decision in Rego, for the OPA rows of
# scripts/bench-trail-http.sh. It decides what the PDP decides on
# examples/authzen-todo (policies/todo.cedar, schema/todo.cedarschema):
# the input is the AuthZEN Access Evaluation request itself; the user is
# looked up by the opaque PID in subject.id in data.users (data.json: the
# users, emails and roles of policies/entities.json), and nothing the
# request says about the user is believed. opa_test.go checks the two agree.
package todo

default allow := false

# What the PDP checks before Cedar sees a request: subject and resource
# name an entity type of the schema (matched case-insensitively) and the
# properties the schema declares for that type are strings; properties it
# does not declare are dropped.
declared := {
	"user": {"name", "email", "picture"},
	"todo": {"ownerID"},
	"role": set(),
}

known_type(e) if declared[lower(e.type)]

ill_typed(e) if {
	some k, v in e.properties
	k in declared[lower(e.type)]
	v != null
	not is_string(v)
}

# The subject and resource types the schema lets each action apply to
# (appliesTo): the PDP denies any other type (entity_type_mismatch), so a
# subject of type role never reaches the role checks below.
applies_to := {
	"can_read_user": {"subject": "user", "resource": "user"},
	"can_read_todos": {"subject": "user", "resource": "todo"},
	"can_create_todo": {"subject": "user", "resource": "todo"},
	"can_update_todo": {"subject": "user", "resource": "todo"},
	"can_delete_todo": {"subject": "user", "resource": "todo"},
}

applies if {
	a := applies_to[input.action.name]
	lower(input.subject.type) == a.subject
	lower(input.resource.type) == a.resource
}

valid if {
	known_type(input.subject)
	known_type(input.resource)
	applies
	not ill_typed(input.subject)
	not ill_typed(input.resource)
}

# The user known under subject.id; undefined for a subject that is not a
# user the bundle holds.
user := data.users[input.subject.id] if lower(input.subject.type) == "user"

# Role membership as Cedar's `principal in Role::"r"`: the roles of the
# known user. (Cedar's `in` is reflexive, but a subject of type role is
# not valid: see applies.)
member_of(r) if r in user.roles

# The user owns the todo when the todo's ownerID (sent by the PEP) is the
# user's email.
owns_todo if {
	lower(input.resource.type) == "todo"
	input.resource.properties.ownerID == user.email
}

# todo-read-user: everyone may see who owns a todo.
permit if input.action.name == "can_read_user"

# todo-read-todos: everyone may list the shared todos.
permit if input.action.name == "can_read_todos"

# todo-create: admins and editors may create todos.
permit if {
	input.action.name == "can_create_todo"
	some r in ["admin", "editor"]
	member_of(r)
}

# todo-update-any-evil-genius: an evil genius may (un)complete any todo.
permit if {
	input.action.name == "can_update_todo"
	member_of("evil_genius")
}

# todo-update-own-editor: an editor may (un)complete the todos they own.
permit if {
	input.action.name == "can_update_todo"
	member_of("editor")
	owns_todo
}

# todo-delete-any-admin: an admin may delete any todo.
permit if {
	input.action.name == "can_delete_todo"
	member_of("admin")
}

# todo-delete-own-editor: an editor may delete the todos they own.
permit if {
	input.action.name == "can_delete_todo"
	member_of("editor")
	owns_todo
}

allow if {
	valid
	permit
}
