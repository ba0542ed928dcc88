// hutch pause: freeze every process of a sandbox (cgroup freezer).
import { transitionVerb } from './transition.js';

export const command = transitionVerb('pause', 'Freeze every process of running sandboxes.', (e, ref) => e.pause(ref));
