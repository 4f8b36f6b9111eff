"""The criteria language. Keywords are lower case; field names are dotted
identifiers. `?rule` inlines a rule with a single child, so the tree only
holds an and/or node where the text has the operator.

Kept in Python rather than a .lark file so that it ships with the package
without package-data configuration.
"""

GRAMMAR = r"""
?start: or_expr

?or_expr: and_expr (_OR and_expr)*
?and_expr: not_expr (_AND not_expr)*
?not_expr: _NOT not_expr -> not_
         | atom
?atom: "(" or_expr ")"
     | clause

clause: field CMP value                     -> compare
      | field _IN list                      -> in_
      | field _NOT _IN list                 -> not_in
      | field _CONTAINS literal             -> contains
      | field _EXISTS                       -> exists
      | field _NOT _EXISTS                  -> not_exists
      | field _WITHIN NUMBER _DAYS          -> within
      | field _WITHIN _LAST NUMBER _DAYS    -> within_last

field: NAME ("." NAME)*

?value: literal
      | NUMBER _DAYS _AGO                   -> days_ago
      | NUMBER _DAYS _FROM _NOW             -> days_from_now

?literal: STRING                            -> string
        | NUMBER                            -> number
        | "true"                            -> true
        | "false"                           -> false
        | "null"                            -> null

list: "[" (literal ("," literal)*)? "]"

_OR: "or"
_AND: "and"
_NOT: "not"
_IN: "in"
_CONTAINS: "contains"
_EXISTS: "exists"
_WITHIN: "within"
_LAST: "last"
_DAYS: "days" | "day"
_AGO: "ago"
_FROM: "from"
_NOW: "now"

CMP: "==" | "!=" | "<=" | ">=" | "<" | ">"
NAME: /[A-Za-z_][A-Za-z0-9_]*/
NUMBER: /[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?/
STRING: /"(\\.|[^"\\])*"/

%import common.WS
%ignore WS
"""
