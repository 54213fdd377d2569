/** Whether `RUNTRAIL_ENABLED` leaves tracking on: anything but false, 0, no or off. */
export function envEnabled(env: Readonly<Record<string, string | undefined>>): boolean {
  const value = env.RUNTRAIL_ENABLED?.trim().toLowerCase();
  return !(value === "false" || value === "0" || value === "no" || value === "off");
}
