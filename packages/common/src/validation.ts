// Names and identifiers shared by every resource.

/** Blaxel resource names: lowercase alphanumerics and '-', at most 49, no leading/trailing '-'. */
export const NAME_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,47}[a-z0-9])?$/;
export const NAME_MAX = 49;
/** Caller-owned external ids: at most 64 of [A-Za-z0-9-]. */
export const EXTERNAL_ID_PATTERN = /^[A-Za-z0-9-]{1,64}$/;
/** Environment variable names. */
export const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function describeNameProblem(name: string): string | null {
  if (name.length === 0) return "name must not be empty";
  if (name.length > NAME_MAX) return `name must be at most ${NAME_MAX} characters (got ${name.length})`;
  if (!NAME_PATTERN.test(name)) return `name ${JSON.stringify(name)} may only contain lowercase letters, digits and '-', and must start and end with a letter or digit`;
  return null;
}
