/** Names of the devices the gateway owns. No imports, so any module can use it. */

/** Prefix of the VXLAN devices the gateway owns; anything else it never touches. */
export const VXLAN_PREFIX = 'l2fv';

const VXLAN_DEVICE_NAME = new RegExp(`^${VXLAN_PREFIX}[0-9]+$`);

/** True for names the gateway gives its VXLAN devices (so no tunnel may take one). */
export function isVxlanDeviceName(name: string): boolean {
  return VXLAN_DEVICE_NAME.test(name);
}

/** Name of the VXLAN device of a network: derived from the VNI, fits IFNAMSIZ. */
export function vxlanName(vni: number): string {
  return `${VXLAN_PREFIX}${vni}`;
}
