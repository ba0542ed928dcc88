// hutch resume: thaw a paused sandbox.
import { transitionVerb } from './transition.js';

export const command = transitionVerb('resume', 'Thaw paused sandboxes.', (e, ref) => e.resume(ref));
