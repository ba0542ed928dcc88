// hutch start: start a ready sandbox.
import { transitionVerb } from './transition.js';

export const command = transitionVerb('start', 'Start ready sandboxes: the agent comes up, then the main command (if any) runs.', (e, ref) => e.start(ref));
