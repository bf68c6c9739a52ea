# One value of kubemeta.yaml. Strings become YAML double-quoted scalars
# (JSON's string syntax, which YAML reads the same way), so no value, however
# odd, can change the file's structure; numbers and booleans are written as
# they are, and arrays as flow sequences of such values.
function kubemeta::yaml_value(
  Variant[String, Numeric, Boolean, Array[Variant[String, Numeric, Boolean]]] $value,
) >> String {
  case $value {
    String: {
      # A line break or other control character in a setting is always a
      # mistake (a pasted token, a stray newline in Hiera), never a value.
      if $value =~ /[\x00-\x1f\x7f]/ {
        fail("kubemeta: a setting contains a control character (line break, tab or the like): ${String($value, '%p')}")
      }
      $escaped = regsubst(regsubst($value, '\\\\', '\\\\\\\\', 'G'), '"', '\\"', 'G')
      "\"${escaped}\""
    }
    Array: {
      $items = $value.map |$item| { kubemeta::yaml_value($item) }
      "[${items.join(', ')}]"
    }
    default: {
      "${value}"
    }
  }
}
